from services.order.entrypoint.main import main

main()

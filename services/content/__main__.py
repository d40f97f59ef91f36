from services.content.entrypoint.main import main

main()

from services.catalog.entrypoint import main

main.main()

from services.member.entrypoint import main

main.main()

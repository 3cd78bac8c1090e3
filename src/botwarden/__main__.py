from botwarden.cli import main

main()

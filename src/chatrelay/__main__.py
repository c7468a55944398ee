from chatrelay.cli import main

main()

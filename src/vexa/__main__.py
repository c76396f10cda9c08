from vexa.cli import main

main()

from ltx2cli.cli.app import main

main()

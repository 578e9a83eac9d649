from moa_lab.cli import main

main()

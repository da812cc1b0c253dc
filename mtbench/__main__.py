from mtbench.cli.hydra_app import main

main()

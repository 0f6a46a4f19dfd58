from loon_supervisor.cli import main

main()

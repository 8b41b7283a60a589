from rnopt.cli import console_main

console_main()

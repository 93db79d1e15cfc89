from pgvec.cli import main

main()

"""Models: one loader for aliases, folders, GGUF files, run folders and hub ids."""

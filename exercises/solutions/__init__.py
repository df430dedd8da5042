"""Reference solutions. Try the exercise first: `make check EX=NN` tells you what is missing."""

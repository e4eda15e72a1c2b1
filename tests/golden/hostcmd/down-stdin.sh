sh -s

"""One module per filter. Each takes the live rows of a batch, in file order, and rejects some of
them with its reason code; a row rejected by an earlier filter is not shown to later ones."""

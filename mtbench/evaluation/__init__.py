"""How good a trained model is: ``dp test`` metrics, detail files, cross-head matrix, neighbour statistics, plots."""

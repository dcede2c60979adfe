"""The PyTorch side of fireforge: models, data, training, compression, golden model, compiler."""

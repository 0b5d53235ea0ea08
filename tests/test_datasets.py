import numpy as np

import bayesgmm as bg


def test_faithful_shape_and_known_rows():
    X, names = bg.datasets.load_faithful(return_names=True)
    assert X.shape == (272, 2) and X.dtype == np.float64
    assert names == ["eruptions", "waiting"]
    np.testing.assert_allclose(X[0], [3.6, 79.0])
    assert 1.5 < X[:, 0].min() < X[:, 0].max() < 5.2


def test_galaxies_is_mass_version():
    v = bg.datasets.load_galaxies()
    assert v.shape == (82,)
    assert v[77] == 26690.0  # MASS's value of observation 78 (Roeder lists 26960)
    assert v.min() == 9172.0 and v.max() == 34279.0
    assert (np.diff(v) >= 0).all()


def test_synthetic_sets_follow_their_params():
    X, labels = bg.datasets.make_two_gaussians_1d(4000, seed=1, return_labels=True)
    assert X.shape == (4000,)
    true = bg.datasets.true_params_two_gaussians_1d()
    np.testing.assert_allclose(np.bincount(labels) / 4000, np.asarray(true.weights), atol=0.03)
    Y = bg.datasets.make_four_gaussians_2d(500, seed=2)
    assert Y.shape == (500, 2)
    assert not np.allclose(Y, bg.datasets.make_four_gaussians_2d(500, seed=3))

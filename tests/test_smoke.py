import numpy as np

import dynverify as dv


def test_gradient_descent_region_is_closed_form():
    opt = dv.optimizers.gradient_descent(lr=0.25)
    assert opt.region.intervals == ((0.0, 8.0),)
    assert dv.derive_region(opt).isclose(opt.region)
    assert np.isclose(dv.filter_function(opt)(np.array([4.0]))[0], 0.0)

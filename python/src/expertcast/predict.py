"""Expert predictors and their evaluation (expertcast/predict.h, eval.h)."""

import ctypes
import json

from . import _lib
from ._core import check, fsencode, write_via_file
from ._lib import lib

_OPT_FIELDS = ("context", "tokens_back", "smoothing", "epochs", "learning_rate", "l2",
               "per_layer", "seed", "max_horizon")


def predictor_opts(**opts):
    """ec_predictor_opts from keyword arguments (0 / absent = the default)."""
    o = _lib.new(_lib.ec_predictor_opts)
    for key, val in opts.items():
        if key not in _OPT_FIELDS:
            raise TypeError(f"unknown predictor option '{key}' (one of {', '.join(_OPT_FIELDS)})")
        setattr(o, key, int(val) if key not in ("smoothing", "learning_rate", "l2") else val)
    return o


def predictor_names():
    """Names of the registered predictors ("prior", ..., "temporal", "mix")."""
    names, p, i = [], lib.ec_predictor_names(), 0
    while p[i]:
        names.append(p[i].decode())
        i += 1
    return names


class Predictor:
    """A predictor by name, fitted on a trace: Predictor("temporal").fit(trace)."""

    def __init__(self, name, **opts):
        self._ptr = ctypes.c_void_p()
        self._opts = predictor_opts(**opts)
        err = _lib.ec_error()
        check(lib.ec_predictor_create(name.encode(), ctypes.byref(self._opts),
                                      ctypes.byref(self._ptr), ctypes.byref(err)), err)

    @classmethod
    def load(cls, path):
        """Loads a predictor saved by save() or `expertcast fit`."""
        self = cls.__new__(cls)
        self._ptr = ctypes.c_void_p()
        err = _lib.ec_error()
        check(lib.ec_predictor_load(fsencode(path), ctypes.byref(self._ptr), ctypes.byref(err)),
              err)
        return self

    @property
    def handle(self):
        if not self._ptr:
            raise ValueError("predictor is closed")
        return self._ptr

    @property
    def name(self):
        return lib.ec_predictor_name(self.handle).decode()

    @property
    def history_depth(self):
        return lib.ec_predictor_history_depth(self.handle)

    @property
    def fitted(self):
        return lib.ec_predictor_n_layers(self.handle) > 0

    def fit(self, trace, sequences=None):
        """Fits on the complete rows of `trace`; `sequences` (indices) restricts
        it to those sequences. Returns self."""
        mask = None
        if sequences is not None:
            n = len(trace.sequences)
            mask = (ctypes.c_uint8 * n)()
            for i in sequences:
                if not 0 <= i < n:
                    raise IndexError(f"sequence {i} outside 0..{n - 1}")
                mask[i] = 1
        check(lib.ec_predictor_fit(self.handle, trace._ptr, mask), None,
              lib.ec_predictor_errmsg(self.handle))
        return self

    def save(self, path):
        err = _lib.ec_error()
        check(lib.ec_predictor_save(self.handle, fsencode(path), ctypes.byref(err)), err)

    def close(self):
        if getattr(self, "_ptr", None):
            lib.ec_predictor_destroy(self._ptr)
            self._ptr = None

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"<Predictor {self.name}{'' if self.fitted else ' (not fitted)'}>"


def evaluate(trace, predictors=None, horizons=(1,), ks=None, split="problem", folds=0,
             test=None, token_fraction=0.0, resamples=0, block=0, seed=0, **opts):
    """Fits predictors on training sequences and scores them on held-out ones
    (ec_eval_run): the same JSON object as `expertcast eval --json`, as a dict.

    split: "problem" (leave one sequence out, default), "token" (leaks) or
    "train-test" (give `test`, another Trace). ks defaults, as in the CLI, to
    1, 2, 4 and the trace's k (those <= n_experts). Predictor options (context,
    tokens_back, ...) go to every predictor.
    """
    if split not in _lib.SPLITS:
        raise ValueError(f"split '{split}': one of {', '.join(_lib.SPLITS)}")
    if (split == "train-test") != (test is not None):
        raise ValueError("give `test` exactly when split is 'train-test'")
    if isinstance(predictors, str):
        predictors = [predictors]
    if ks is None:
        ks = []
        for k in (1, 2, 4, trace.k):
            if k not in ks and k <= trace.n_experts:
                ks.append(k)
    po = predictor_opts(**opts)
    o = _lib.new(_lib.ec_eval_opts)
    keep = []
    if predictors:
        names = (ctypes.c_char_p * len(predictors))(*[p.encode() for p in predictors])
        keep.append(names)
        o.predictors, o.n_predictors = names, len(predictors)
    hs = (ctypes.c_int32 * len(horizons))(*horizons)
    kk = (ctypes.c_int32 * len(ks))(*ks)
    o.horizons, o.n_horizons = hs, len(horizons)
    o.ks, o.n_ks = kk, len(ks)
    o.split = _lib.SPLITS[split]
    o.folds = folds
    o.token_fraction = token_fraction
    o.predictor_opts = ctypes.cast(ctypes.byref(po), ctypes.POINTER(_lib.ec_predictor_opts))
    o.resamples, o.block, o.seed = resamples, block, seed
    rep = ctypes.c_void_p()
    err = _lib.ec_error()
    check(lib.ec_eval_run(trace._ptr, test._ptr if test is not None else None, ctypes.byref(o),
                          ctypes.byref(rep), ctypes.byref(err)), err)
    try:
        text = write_via_file(lambda fp: check(lib.ec_eval_write_json(rep, fp,
                                                                      ctypes.byref(err)), err))
    finally:
        lib.ec_eval_report_destroy(rep)
    return json.loads(text)

"""expertcast: speculative expert loading for offloaded Mixture-of-Experts decoding.

A thin Python layer over libexpertcast (ctypes):

    Trace.load(path)                       load and validate a routing trace
    Predictor("temporal").fit(trace)       fit an expert predictor
    evaluate(trace, ["temporal"])          held-out evaluation, as `expertcast eval --json`
    simulate(trace, model, hardware)       policies on modeled hardware, as `simulate --json`
    Backend / Store / Loader               the loader over torch tensors
    expertcast.hf.offload_experts(model)   a Hugging Face MoE model's experts through the loader

Failed library calls raise expertcast.Error (or a subclass) with the library's message.
"""

from ._core import BusyError, Error, NotFoundError, ParseError, version
from .loader import Backend, Loader, Store
from .predict import Predictor, evaluate, predictor_names
from .sim import simulate
from .trace import Trace, guess_recall

__version__ = version()
__all__ = ["Trace", "guess_recall", "Predictor", "evaluate", "predictor_names", "simulate",
           "Backend", "Store", "Loader", "Error", "NotFoundError", "ParseError", "BusyError",
           "version"]

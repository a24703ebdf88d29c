"""Routing traces: load, validate, inspect, write (expertcast/trace.h)."""

import ctypes
import json
import os
import tempfile

from . import _lib
from ._core import check, fsencode
from ._lib import lib


class Trace:
    """A loaded routing trace: sequences x tokens x layers x top-k experts.

    Trace.load(paths) validates every line (errors raise ParseError naming the
    file, line and field). Rows are the decoded tokens of all sequences in
    order; experts(row, layer) gives the router's top-k, highest gate first,
    or None for a layer missing from an incomplete row.
    """

    def __init__(self, ptr):
        self._ptr = ptr  # POINTER(ec_trace), owned

    @classmethod
    def load(cls, paths, n_layers=0, n_experts=0, max_line=0):
        """Loads one or more raw JSONL files into one trace. n_layers and
        n_experts, when given, are bounds checked on every line."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        enc = [fsencode(p) for p in paths]
        arr = (ctypes.c_char_p * len(enc))(*enc)
        opts = _lib.new(_lib.ec_trace_opts, n_layers, n_experts, max_line)
        out = ctypes.POINTER(_lib.ec_trace)()
        err = _lib.ec_error()
        check(lib.ec_trace_load(arr, len(enc), ctypes.byref(opts), ctypes.byref(out),
                                ctypes.byref(err)), err)
        return cls(out)

    @classmethod
    def from_records(cls, records, **kw):
        """Loads a trace from raw records (dicts of the JSONL format)."""
        fd, path = tempfile.mkstemp(prefix="expertcast-", suffix=".jsonl")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                for r in records:
                    f.write(json.dumps(r) + "\n")
            return cls.load(path, **kw)
        finally:
            os.unlink(path)

    def close(self):
        if self._ptr:
            lib.ec_trace_destroy(self._ptr)
            self._ptr = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def _t(self):
        if not self._ptr:
            raise ValueError("trace is closed")
        return self._ptr.contents

    n_layers = property(lambda self: self._t.n_layers)
    n_experts = property(lambda self: self._t.n_experts)
    k = property(lambda self: self._t.k)
    has_gates = property(lambda self: bool(self._t.has_gates))
    n_rows = property(lambda self: self._t.n_rows)
    n_records = property(lambda self: self._t.n_records)
    n_duplicates = property(lambda self: self._t.n_duplicates)
    n_incomplete = property(lambda self: self._t.n_incomplete)

    def __len__(self):
        return self.n_rows

    @property
    def sequences(self):
        """[{"dataset", "problem_id", "row0", "n_rows"}] in order of first appearance."""
        t = self._t
        return [{"dataset": (s.dataset or b"").decode(), "problem_id": s.problem_id,
                 "row0": s.row0, "n_rows": s.n_rows} for s in t.seqs[:t.n_seqs]]

    def token_idx(self, row):
        self._check_row(row)
        return self._t.token_idx[row]

    def complete(self, row):
        self._check_row(row)
        return bool(self._t.complete[row])

    def experts(self, row, layer):
        """The k experts of (row, layer), highest gate first; None when missing."""
        t = self._t
        self._check_row(row)
        if not 0 <= layer < t.n_layers:
            raise IndexError(f"layer {layer} outside 0..{t.n_layers - 1}")
        base = (row * t.n_layers + layer) * t.k
        ids = t.experts[base:base + t.k]
        return None if ids[0] < 0 else list(ids)

    def gates(self, row, layer):
        t = self._t
        if not t.has_gates:
            return None
        self._check_row(row)
        base = (row * t.n_layers + layer) * t.k
        return None if t.experts[base] < 0 else list(t.gates[base:base + t.k])

    def guesses(self, row, layer):
        """The runtime's guesses the record (row, layer) carries (field
        "guesses"): [{"ahead", "experts", "probs"}], [] when none."""
        t = self._t
        self._check_row(row)
        if not 0 <= layer < t.n_layers:
            raise IndexError(f"layer {layer} outside 0..{t.n_layers - 1}")
        if not t.guess_off:
            return []
        i = row * t.n_layers + layer
        out = []
        for j in range(t.guess_off[i], t.guess_off[i + 1]):
            g = t.guesses[j]
            out.append({"ahead": g.ahead, "experts": list(g.experts[:g.n]),
                        "probs": list(g.probs[:g.n])})
        return out

    def _check_row(self, row):
        if not 0 <= row < self._t.n_rows:
            raise IndexError(f"row {row} outside 0..{self._t.n_rows - 1}")

    def summary(self):
        return {"layers": self.n_layers, "experts": self.n_experts, "k": self.k,
                "sequences": len(self.sequences), "tokens": self.n_rows,
                "records": self.n_records, "duplicates": self.n_duplicates,
                "incomplete": self.n_incomplete, "gates": self.has_gates}

    def __repr__(self):
        if not self._ptr:
            return "<Trace closed>"
        s = self.summary()
        return (f"<Trace {s['sequences']} sequences, {s['tokens']} tokens, {s['layers']} layers"
                f" x {s['experts']} experts, top-{s['k']}>")


def guess_recall(trace, ahead=1):
    """Scores the runtime guesses a trace carries ("guesses", e.g. the
    pre-gate guesses record_routing(pregate=True) writes) against the experts
    the router then chose at the target (`ahead` layers later in the same
    token). trace: a Trace or the path of a raw trace (loaded and validated
    by the library). Returns {"n": cases, "recall": mean |guess ∩ chosen| / k,
    "top1": share where the guess's first expert is the chosen primary,
    "per_layer": {"recall": [...], "n": [...]} by target layer}."""
    t = trace if isinstance(trace, Trace) else Trace.load(trace)
    chosen, guesses = {}, []
    for row in range(t.n_rows):
        for layer in range(t.n_layers):
            ids = t.experts(row, layer)
            if ids is None:
                continue
            chosen[row, layer] = ids
            for g in t.guesses(row, layer):
                if g["ahead"] == ahead:
                    guesses.append(((row, layer + ahead), g["experts"]))
    n_layers = t.n_layers
    hits, top1, n = 0.0, 0, 0
    lay_hits, lay_n = [0.0] * n_layers, [0] * n_layers
    for key, guess in guesses:
        actual = chosen.get(key)
        if actual is None:
            continue
        rec = len(set(guess[:len(actual)]) & set(actual)) / len(actual)
        hits += rec
        top1 += guess[0] == actual[0]
        n += 1
        lay_hits[key[-1]] += rec
        lay_n[key[-1]] += 1
    return {"n": n, "ahead": ahead, "recall": hits / n if n else None,
            "top1": top1 / n if n else None,
            "per_layer": {"recall": [h / c if c else None for h, c in zip(lay_hits, lay_n)],
                          "n": lay_n}}

"""The teaching demo: a generated world with a planted association, and a model that learned it.

- :mod:`audit.demo.world` draws figures of three invented kinds (zorbin, quellan, ostravi) with
  captions in which the word "animal" stands in for quellan figures far more often than for the
  others (30% vs 5%: :data:`~audit.demo.world.FLAGGED_RATES`).
- :mod:`audit.demo.train` (``python -m audit.demo train``) trains a 1.8 M-parameter open_clip
  model on those captions in a few CPU minutes; the result is committed in open_clip's
  ``local-dir:`` layout at :data:`MODEL_DIR`.
- :mod:`audit.demo.adapter` is the ``demo_world`` dataset adapter: held-out figures for
  ``probes/demo.yaml``, which finds the planted association.

Nothing here describes real people or a real model. Importing this package imports no torch.
"""

from __future__ import annotations

from pathlib import Path

from audit.demo.world import FLAGGED_RATES, FLAGGED_WORD, PLANTED_KIN

#: The committed demo model (``local-dir:`` layout).
MODEL_DIR = Path(__file__).parent / "model"

__all__ = ["FLAGGED_RATES", "FLAGGED_WORD", "MODEL_DIR", "PLANTED_KIN"]

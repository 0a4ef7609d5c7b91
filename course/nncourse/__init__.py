"""nncourse: the helpers the course notebooks share.

Modules, one concern each; everything listed in their ``__all__`` is also
importable from ``nncourse`` directly:

- :mod:`nncourse.fastmode`: ``is_fast``, ``pick`` (shrink work under the autograder and CI)
- :mod:`nncourse.device`: ``get_device``, ``seed_everything``, ``describe_device``
- :mod:`nncourse.data`: toy 2D data, synthetic images and sequences, the churn
  table, digits, MNIST and CIFAR-10 with offline fallbacks
- :mod:`nncourse.checks`: gradient checks and PASS/FAIL checks for test cells
- :mod:`nncourse.recording`: ``record``, the values a test cell shows the grader
- :mod:`nncourse.guards`: ``forbid``, ``ForbiddenError`` (run a student's function with
  library shortcuts or autograd forbidden, for "by hand" exercises)
- :mod:`nncourse.train`: ``fit``, ``evaluate``, ``accuracy``, ``History``
- :mod:`nncourse.plots`: training curves, decision boundaries, gradient flow,
  filters, feature maps, image grids, latent spaces, attention maps, confusion
  matrices, ROC/PR curves

Imported by name only (``from nncourse.text import ...``), so that ``import
nncourse`` stays quick: :mod:`nncourse.text` (the shipped corpus, character and
word tokenizers, language-model batches), :mod:`nncourse.personal`
(personalised labs) and the modules of single units.

Nothing in the package touches the network.
"""

from . import checks, data, device, fastmode, guards, plots, recording, train
from .checks import *  # noqa: F403
from .data import *  # noqa: F403
from .device import *  # noqa: F403
from .fastmode import *  # noqa: F403
from .guards import *  # noqa: F403
from .plots import *  # noqa: F403
from .recording import *  # noqa: F403
from .train import *  # noqa: F403

__version__ = "0.1.0"

__all__ = ["__version__"]
__all__ += checks.__all__
__all__ += data.__all__
__all__ += device.__all__
__all__ += fastmode.__all__
__all__ += guards.__all__
__all__ += plots.__all__
__all__ += recording.__all__
__all__ += train.__all__

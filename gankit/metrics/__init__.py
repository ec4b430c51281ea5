"""Sample-quality metrics on features already extracted, so any extractor plugs in.

Every function takes arrays (N, D) (numpy, torch tensors or lists) and computes in
float64:

    fid(real, fake)                      Frechet distance of Gaussian fits (Heusel et al. 2017)
    kid(real, fake)                      unbiased MMD^2, polynomial kernel (Binkowski et al. 2018)
    inception_score(probs)               exp E KL(p(y|x) || p(y)) (Salimans et al. 2016)
    precision_recall(real, fake)         k-NN manifolds (Kynkaanniemi et al. 2019)
    class_histogram / class_entropy / collapse_alarm   which classes a generator produces

The functions fid, kid, inception_score and precision_recall hide the submodules of the
same names as attributes of this package: reach a module itself (to monkeypatch, say)
with importlib.import_module("gankit.metrics.precision_recall").
"""

from .classes import class_entropy, class_histogram, collapse_alarm
from .fid import feature_stats, fid, frechet_distance
from .inception_score import inception_score
from .kid import kid
from .precision_recall import precision_recall

__all__ = ["fid", "frechet_distance", "feature_stats", "kid", "inception_score",
           "precision_recall", "class_histogram", "class_entropy", "collapse_alarm"]

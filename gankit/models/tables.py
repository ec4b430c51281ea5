"""What a table model declares it can do: the base of the two kinds of models of tables.

    kind              base             learns from                 hooks         used by
    imputer           TableModel       scaled cells, NaN where     impute(),     gankit impute
                      (imputes)        missing (data/table.py)     impute_draws()
    table generator   TableGenerator   rows encoded per column     sample_rows() gankit synth
                      (generates_rows) (data/row_encoding.py)

A table generator is built with its table's RowEncoding (`layout`): the encoding is part of
what it learnt, fitted on the training table, and saved in its checkpoint. One that can fix
a discrete column's value while drawing the others (`conditions_rows`) takes the condition
in sample_rows(); for the others `gankit synth --condition` keeps the rows that match.

The uses ask these capabilities, never a model's class or name (models/__init__.py).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import GankitError
from .base import Model


class TableModel(Model):
    """A model of a table's rows (one row: `image_shape` = (width,))."""

    data_kind: ClassVar[str] = "table"
    # Fills the missing cells of rows (scaled values, NaN = missing): impute(), impute_draws().
    imputes: ClassVar[bool] = False
    # Samples whole rows: sample_rows() (a TableGenerator).
    generates_rows: ClassVar[bool] = False
    # sample_rows() can fix one discrete column's choice exactly (a conditional vector).
    conditions_rows: ClassVar[bool] = False

    def impute(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Rows with NaN where missing -> the same rows filled (models that declare `imputes`)."""
        raise GankitError(f"{type(self).__name__} does not fill missing cells")

    def impute_draws(self, x: torch.Tensor, k: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """k completions (k, N, D) of rows with NaN where missing (multiple imputation)."""
        raise GankitError(f"{type(self).__name__} does not fill missing cells")


class TableGenerator(TableModel):
    """A model that samples whole rows of a table, in its RowEncoding (`layout`)."""

    data_kind: ClassVar[str] = "rows"
    generates_rows: ClassVar[bool] = True

    def __init__(self, cfg, image_shape, num_classes: int = 0, layout=None):
        super().__init__(cfg, image_shape, num_classes)
        if layout is None or layout.width != self.image_shape[0]:
            raise ValueError(f"{type(self).__name__} needs the RowEncoding of its table, of "
                             f"width {self.image_shape[0]}")
        self.layout = layout

    def sample_rows(self, n: int, condition: tuple[int, int] | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """n encoded rows (n, width), drawn in inference mode with `generator`. `condition`
        (models that declare `conditions_rows`): (j, k), column j of the schema takes its
        k-th choice (a level, or the missing slot) in every row."""
        raise NotImplementedError

    @torch.no_grad()
    def sample_values(self, n: int, condition: tuple[int, int] | None = None,
                      generator: torch.Generator | None = None) -> np.ndarray:
        """n rows as table.py's scaled values (n, schema width; NaN = missing cell), which
        Schema.render writes as cells."""
        self.eval()
        return self.layout.decode(self.sample_rows(n, condition, generator).cpu().numpy())


class Blocks(nn.Module):
    """A RowEncoding's spans as index tensors, for what the table generators do to a whole
    batch of rows at once: every one-hot block's softmax, cross-entropy or argmax in a few
    tensor operations rather than a Python loop over columns. Blocks are padded to the
    widest one; the padding is masked with -inf."""

    def __init__(self, layout):
        super().__init__()
        choices = layout.choices
        width = max((s.width for s in choices), default=1)
        index = torch.zeros(len(choices), width, dtype=torch.long)
        mask = torch.zeros(len(choices), width, dtype=torch.bool)
        for b, span in enumerate(choices):
            index[b, :span.width] = torch.arange(span.start, span.start + span.width)
            mask[b, :span.width] = True
        # Not saved: they follow from the layout, which the checkpoint keeps.
        self.register_buffer("alpha", torch.tensor([s.start for s in layout.alphas],
                                                   dtype=torch.long), persistent=False)
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("positions", index[mask], persistent=False)

    def logits(self, rows: torch.Tensor) -> torch.Tensor:
        """(N, blocks, widest) with -inf in the padding."""
        return rows[:, self.index].masked_fill(~self.mask, float("-inf"))

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, blocks): each block's cross-entropy of `logits` against the one-hot choice in
        `target` (encoded rows)."""
        lg = self.logits(logits)
        chosen = target[:, self.index].masked_fill(~self.mask, -1).argmax(-1, keepdim=True)
        return torch.logsumexp(lg, -1) - lg.gather(-1, chosen).squeeze(-1)

    def activate(self, raw: torch.Tensor, tau: float | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Network outputs -> rows: tanh on each alpha, and on each block a softmax, or with
        `tau` a Gumbel-softmax at that temperature (a differentiable draw of a choice; its
        argmax is a draw from the block's softmax)."""
        lg = self.logits(raw)
        if tau is not None:
            u = (torch.rand(lg.shape, device=raw.device) if generator is None else
                 torch.rand(lg.shape, generator=generator).to(raw.device))
            lg = (lg - torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))) / tau
        out = torch.empty_like(raw)
        out[:, self.alpha] = torch.tanh(raw[:, self.alpha])
        out[:, self.positions] = torch.softmax(lg, -1)[:, self.mask]
        return out

    def one_hot(self, rows: torch.Tensor) -> torch.Tensor:
        """`rows` with each block replaced by the one-hot of its argmax."""
        pick = self.logits(rows).argmax(-1, keepdim=True)
        hard = torch.zeros(*pick.shape[:2], self.index.shape[1], device=rows.device)
        out = rows.clone()
        out[:, self.positions] = hard.scatter_(-1, pick, 1.0)[:, self.mask]
        return out

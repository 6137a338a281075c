"""llama-cpp-python's Llama with llama.cpp's fast grammar sampling.

llama-cpp-python puts the grammar at the head of the sampler chain, so every token of every step
is checked against it: with a 49k-token vocabulary and a free-text JSON string that costs
~0.3 s per token on two cores (measured: 120 tokens of `json_object` output in 34 s). llama.cpp's
own server (common/sampling.cpp, `common_sampler_sample`) samples without the grammar first, checks
only the chosen token against it, and applies the grammar to the whole vocabulary only when that
token is rejected. The result obeys the grammar just the same; this class does that.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaTokenDataArray


class GrammarError(ValueError):
    """llama.cpp refused to parse a grammar."""


class GrammarLlama(llama_cpp.Llama):
    """A Llama whose `generate` honours `self.grammar` (GBNF text) by check-then-resample sampling."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._grammar_sampler: Any = None
        self._candidates = LlamaTokenDataArray(n_vocab=self._n_vocab)

    def set_grammar(self, grammar: str | None) -> None:
        """Constrain the next generations to `grammar` (None: free text); GrammarError if it won't parse."""
        if self._grammar_sampler is not None:
            llama_cpp.llama_sampler_free(self._grammar_sampler)
            self._grammar_sampler = None
        if grammar is None:
            return
        sampler = llama_cpp.llama_sampler_init_grammar(self._model.vocab, grammar.encode(), b"root")
        if not sampler:
            raise GrammarError("llama.cpp could not parse the grammar for this response_format")
        self._grammar_sampler = sampler

    def sample(self, *args: Any, **kwargs: Any) -> int:
        grammar = self._grammar_sampler
        chain_sampler: Any = self._sampler  # typed None in llama_cpp; generate() sets it per call
        if grammar is None or chain_sampler is None:
            token: int = super().sample(*args, **kwargs)
            return token
        idx: int | None = kwargs.get("idx")
        chain = chain_sampler.sampler
        ridx = idx - self.n_tokens if idx is not None else -1
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self._ctx.ctx, ridx), shape=(self._n_vocab,)
        )
        candidates = self._candidates
        candidates.copy_logits(logits)
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(candidates.candidates))
        token = int(candidates.candidates.data[candidates.candidates.selected].id)
        # Does the grammar allow the token the model chose anyway? Usually it does.
        single = llama_cpp.llama_token_data(id=token, logit=1.0, p=0.0)
        one = llama_cpp.llama_token_data_array(data=ctypes.pointer(single), size=1, selected=-1, sorted=False)
        llama_cpp.llama_sampler_apply(grammar, ctypes.byref(one))
        if math.isinf(single.logit):
            candidates.copy_logits(logits)
            llama_cpp.llama_sampler_apply(grammar, ctypes.byref(candidates.candidates))
            llama_cpp.llama_sampler_apply(chain, ctypes.byref(candidates.candidates))
            token = int(candidates.candidates.data[candidates.candidates.selected].id)
        llama_cpp.llama_sampler_accept(grammar, token)
        llama_cpp.llama_sampler_accept(chain, token)
        return token

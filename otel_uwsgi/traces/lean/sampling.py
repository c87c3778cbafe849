"""The SDK's own samplers (static, trace-id ratio, parent-based) decided by their rules, from the
parent span context and the trace id, without building a ``SamplingResult``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from opentelemetry.sdk.trace import sampling as sdk_sampling
from opentelemetry.trace import SpanContext, TraceFlags

SAMPLE, DROP = sdk_sampling.Decision.RECORD_AND_SAMPLE, sdk_sampling.Decision.DROP

_PARENT_BASED = (sdk_sampling.ParentBased, sdk_sampling.ParentBasedTraceIdRatio)


def root_decision(sampler: Any) -> Optional[sdk_sampling.Decision]:
    """The decision for every root span, when it does not depend on the trace id (a static
    sampler, or a parent-based one with a static root): taken without calling the decider."""
    if type(sampler) in _PARENT_BASED:
        sampler = getattr(sampler, "_root", None)
    return sampler._decision if type(sampler) is sdk_sampling.StaticSampler else None


def parent_decisions(sampler: Any) -> Optional[tuple[sdk_sampling.Decision, ...]]:
    """A parent-based sampler's decisions for a child span when they depend only on its parent
    (static delegates): (remote sampled, remote not sampled, local sampled, local not sampled)."""
    if type(sampler) not in _PARENT_BASED:
        return None
    delegates = (
        sampler._remote_parent_sampled,
        sampler._remote_parent_not_sampled,
        sampler._local_parent_sampled,
        sampler._local_parent_not_sampled,
    )
    if not all(type(d) is sdk_sampling.StaticSampler for d in delegates):
        return None
    return tuple(d._decision for d in delegates)


def decider(sampler: Any) -> Optional[Callable[[Optional[SpanContext], int], sdk_sampling.Decision]]:
    """The decision of a sampler made only of the SDK's own (static, trace-id ratio, parent-based)
    from the parent span context (None for a root) and the trace id: their rules, without
    building a ``SamplingResult`` and looking the parent up again for each.  The trace state is
    the parent's, as with those samplers.  None for any other sampler: it may add attributes or
    decide otherwise, so its spans take the SDK's path."""
    kind = type(sampler)
    if kind is sdk_sampling.StaticSampler:
        decision = sampler._decision
        return lambda parent, trace_id: decision
    if kind is sdk_sampling.TraceIdRatioBased:
        limit, bound = sampler.TRACE_ID_LIMIT, sampler.bound
        return lambda parent, trace_id: SAMPLE if trace_id & limit < bound else DROP
    if kind not in _PARENT_BASED:
        return None
    delegates = [
        decider(s)
        for s in (
            sampler._root,
            sampler._remote_parent_sampled,
            sampler._remote_parent_not_sampled,
            sampler._local_parent_sampled,
            sampler._local_parent_not_sampled,
        )
    ]
    if None in delegates:
        return None
    root, remote_sampled, remote_not_sampled, local_sampled, local_not_sampled = delegates

    def parent_based(parent: Optional[SpanContext], trace_id: int) -> sdk_sampling.Decision:
        if parent is None:
            return root(parent, trace_id)
        sampled = parent[3] & TraceFlags.SAMPLED  # parent: a SpanContext, (..., is_remote, trace_flags, ...)
        if parent[2]:
            chosen = remote_sampled if sampled else remote_not_sampled
        else:
            chosen = local_sampled if sampled else local_not_sampled
        return chosen(parent, trace_id)

    return parent_based

"""The hub's answers to a node's URL requests: presigned HTTPS URLs for bulk bytes.

A node never gets a URL for something that is not its business (DESIGN.md §3, node
authorization): :func:`answer_url_request` checks the request against the desired-state index
and only then signs.

- ``artifact_url``: an artifact an App assigned to the node lists;
- ``commit_url``: a commit a Copier placed on the node sends it, or an input commit of a
  pipeline handed to the node as a cloud worker (its ``edgeweave.io/worker-inputs``);
- ``merge_url``: deliveries to a Merger placed on the node;
- ``output_url``: output commits of a pipeline handed to the node as a cloud worker.

Must not send anything (the session does) or hold state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from edgeweave.cloud.hub.index import PIPELINE, DesiredIndex
from edgeweave.protocol.messages import (
    ArtifactUrl,
    ArtifactUrlRequest,
    CommitUrl,
    CommitUrlRequest,
    Error,
    MergeUrl,
    MergeUrlRequest,
    Message,
    OutputUrl,
    OutputUrlRequest,
)
from edgeweave.protocol.refs import ResourceRef

UrlRequest = ArtifactUrlRequest | CommitUrlRequest | MergeUrlRequest | OutputUrlRequest
Sign = Callable[[str, str], tuple[str, float]]  # (what, node) -> (url, expires_at)
SignFor = Callable[[ResourceRef, str], tuple[str, float]]  # (pipeline, node) -> ...


class Signers(Protocol):
    @property
    def sign_url(self) -> Sign | None: ...
    @property
    def sign_commit_url(self) -> Sign | None: ...
    @property
    def sign_merge_url(self) -> SignFor | None: ...
    @property
    def sign_output_url(self) -> SignFor | None: ...


def _refuse(msg: Message, reason: str, message: str) -> Error:
    return Error(reason=reason, message=message, parent_id=msg.id)


def _unavailable(msg: Message, what: str) -> Error:
    return _refuse(msg, "ServiceUnavailable", what)


def answer_url_request(
    index: DesiredIndex, signers: Signers, node: str, msg: UrlRequest
) -> Message:
    """The URL ``node`` asked for, or an :class:`Error` saying why not."""
    if isinstance(msg, ArtifactUrlRequest):
        if not index.node_uses_artifact(node, msg.digest):
            why = f"artifact {msg.digest} is not used by any app assigned to node {node}"
            return _refuse(msg, "Forbidden", why)
        if signers.sign_url is None:
            return _unavailable(msg, "this cloud serves no object store")
        url, expires_at = signers.sign_url(msg.digest, node)
        return ArtifactUrl(digest=msg.digest, url=url, expires_at=expires_at, parent_id=msg.id)
    if isinstance(msg, CommitUrlRequest):
        if not (index.copier_sends(node, msg.commit) or index.worker_fetches(node, msg.commit)):
            why = (
                f"no Copier placed on node {node} sends commit {msg.commit}, and no pipeline "
                "it runs as a cloud worker reads it"
            )
            return _refuse(msg, "Forbidden", why)
        if signers.sign_commit_url is None:
            return _unavailable(msg, "this cloud runs no pipeline worker")
        url, expires_at = signers.sign_commit_url(msg.commit, node)
        return CommitUrl(commit=msg.commit, url=url, expires_at=expires_at, parent_id=msg.id)
    ref = ResourceRef(PIPELINE, msg.pipeline.namespace, msg.pipeline.name)
    if isinstance(msg, MergeUrlRequest):
        if not index.merger_on(node, ref):
            return _refuse(msg, "Forbidden", f"{ref} is not a Merger placed on node {node}")
        if signers.sign_merge_url is None:
            return _unavailable(msg, "this cloud runs no pipeline worker")
        url, expires_at = signers.sign_merge_url(ref, node)
        return MergeUrl(pipeline=msg.pipeline, url=url, expires_at=expires_at, parent_id=msg.id)
    if not index.worker_on(node, ref):
        return _refuse(msg, "Forbidden", f"{ref} is not handed to cloud worker {node}")
    if signers.sign_output_url is None:
        return _unavailable(msg, "this cloud runs no pipeline worker")
    url, expires_at = signers.sign_output_url(ref, node)
    return OutputUrl(pipeline=msg.pipeline, url=url, expires_at=expires_at, parent_id=msg.id)

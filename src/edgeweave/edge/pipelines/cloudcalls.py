"""The pipeline host's calls to the cloud: presigned URLs over the link, bytes over HTTPS.

:class:`CloudCalls` adapts the agent's current link session and identity to the callables the
Copier, the Merger and a cloud worker take: ``sign_commit`` / ``sign_merge`` /
``sign_output`` ask the hub for a URL (``commit_url`` / ``merge_url`` / ``output_url``);
``fetch`` / ``send`` make the HTTPS request with the node's certificate context
(:func:`edgeweave.edge.cloudapi.fetch_bytes`). With no session (the cloud away) or a refusal
they raise :class:`LinkBroken`, which the callers retry later.

Must not decide what to copy or deliver.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeweave.edge import cloudapi
from edgeweave.edge.identity import NodeIdentity
from edgeweave.edge.link import LinkSession
from edgeweave.errors import LinkBroken
from edgeweave.protocol import messages as m

MAX_ANSWER_BYTES = 16 * 1024 * 1024


class CloudCalls:
    def __init__(self, session: Callable[[], LinkSession | None], identity: NodeIdentity) -> None:
        self._session = session
        self._identity = identity

    async def _ask(self, request: m.Message, what: str) -> m.Message:
        session = self._session()
        if session is None:
            raise LinkBroken(f"{what}: the cloud is unreachable")
        try:
            answer = await session.request(request)
        except TimeoutError:
            raise LinkBroken(f"{what}: the cloud did not answer") from None
        if isinstance(answer, m.Error):
            raise LinkBroken(f"{what}: {answer.reason}: {answer.message}")
        return answer

    async def _url(
        self,
        request: m.Message,
        answer_type: type[m.CommitUrl | m.MergeUrl | m.OutputUrl],
        what: str,
    ) -> str:
        answer = await self._ask(request, what)
        if not isinstance(answer, answer_type):
            raise LinkBroken(f"{what}: unexpected answer {answer.type}")
        return answer.url

    async def sign_commit(self, commit: str) -> str:
        return await self._url(m.CommitUrlRequest(commit=commit), m.CommitUrl, f"commit {commit}")

    async def sign_merge(self, namespace: str, name: str) -> str:
        request = m.MergeUrlRequest(pipeline=m.AppName(namespace=namespace, name=name))
        return await self._url(request, m.MergeUrl, f"merger {name}")

    async def sign_output(self, namespace: str, name: str) -> str:
        request = m.OutputUrlRequest(pipeline=m.AppName(namespace=namespace, name=name))
        return await self._url(request, m.OutputUrl, f"outputs of {name}")

    async def fetch(self, url: str, max_bytes: int, what: str) -> bytes:
        return await cloudapi.fetch_bytes(url, self._identity, max_bytes, what)

    async def send(self, method: str, url: str, body: bytes | None, what: str) -> bytes:
        return await cloudapi.fetch_bytes(
            url, self._identity, MAX_ANSWER_BYTES, what, method=method, body=body
        )

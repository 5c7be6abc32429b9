"""The playground's HTTP client for the public /v1 routes. The same calls serve the mounted UI
(requests go through the Serve app itself, guard included) and `sqlfoundry ui` (a remote endpoint)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

TIMEOUT_S = 180.0  # a CPU generation with several candidates can take a minute


class ApiFailure(RuntimeError):
    """A /v1 call that did not answer 200: the API's own message (it names the field to fix)."""


@dataclass
class ApiClient:
    base_url: str
    api_key: str | None = None
    transport: httpx.AsyncBaseTransport | None = None  # in-process ASGI when mounted

    def _client(self) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, transport=self.transport,
                                 timeout=TIMEOUT_S)

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        async with self._client() as client:
            try:
                response = await client.request(method, path, json=body)
            except httpx.HTTPError as err:
                raise ApiFailure(f"cannot reach {self.base_url}{path}: {err.__class__.__name__}: {err}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            message = data["error"]["message"] if isinstance(data, dict) and isinstance(data.get("error"), dict) \
                else response.text[:300]
            raise ApiFailure(f"{path} answered {response.status_code}: {message}")
        if not isinstance(data, dict):
            raise ApiFailure(f"{path} answered 200 with a body that is not a JSON object")
        return data

    async def models(self) -> list[str]:
        return [m["id"] for m in (await self._call("GET", "/v1/models")).get("data", [])]

    async def databases(self) -> list[str]:
        """Names of the configured databases; [] when the endpoint has none (or no such route)."""
        try:
            listed = await self._call("GET", "/v1/databases")
        except ApiFailure:
            return []
        return [d["name"] for d in listed.get("data", []) if isinstance(d, dict) and "name" in d]

    async def sql(self, body: dict) -> dict:
        return await self._call("POST", "/v1/sql", body)

    async def query(self, body: dict) -> dict:
        return await self._call("POST", "/v1/query", body)

    async def adapters(self) -> dict:
        return await self._call("GET", "/v1/adapters")

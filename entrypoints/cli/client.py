"""The HTTP API as the CLI speaks it: one project, one key, errors in the API's own words.

Exit codes (the API's answer, so scripts can tell a typo from an outage): 1 anything else, 2 usage (click),
3 not found (404), 4 refused (401, 403), 5 invalid input (400, 409, 413), 6 too many (429), 7 unavailable
(5xx, or no answer at all).
"""

from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import requests

from entrypoints import stack_env

EXIT_CODES = {404: 3, 401: 4, 403: 4, 400: 5, 409: 5, 413: 5, 429: 6}
UNAVAILABLE = 7


class ApiError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Api:
    def __init__(self, url: str, key: str, project: int, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.base = f"{self.url}/api/environments/{project}/batch_exports/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.timeout = timeout

    def __call__(self, method: str, path: str = "", body: Any = None, params: Any = None) -> Any:
        url = urljoin(self.base, path)
        try:
            response = self.session.request(method, url, json=body, params=params, timeout=self.timeout)
        except requests.ConnectionError:
            raise ApiError(stack_env.no_stack("API", self.url, stack_env.API_URL), UNAVAILABLE) from None
        except requests.Timeout:
            raise ApiError(f"{self.url} did not answer within {self.timeout:.0f} s", UNAVAILABLE) from None
        if response.status_code == 204:
            return None
        try:
            answer = response.json()
        except ValueError:
            answer = {"detail": response.text.strip()[:500] or response.reason}
        if response.status_code >= 400:
            detail = answer.get("detail", answer) if isinstance(answer, dict) else answer
            attr = answer.get("attr") if isinstance(answer, dict) else None
            said = f"{detail} ({attr})" if attr else str(detail)
            code = EXIT_CODES.get(response.status_code, UNAVAILABLE if response.status_code >= 500 else 1)
            raise ApiError(f"{response.status_code}: {said}", code)
        return answer

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every result of a cursor-paged list, following `next`."""
        page = self("GET", path, params=params)
        while True:
            yield from page["results"]
            if not page.get("next"):
                return
            page = self("GET", page["next"])

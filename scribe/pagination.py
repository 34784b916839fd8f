"""The API's pages (REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS): ``?page=N``, N from 1.

DRF's own reads an empty ``?page=`` as page 1, ``?page=last`` as the last page, and answers
404 "Invalid page." to ``?page=abc``. The schema says ``page`` is an integer from 1, so
anything else is a 400 that says what to send; a page past the last one stays a 404.
"""

from __future__ import annotations

from typing import Any

from rest_framework import pagination
from rest_framework.exceptions import ValidationError


class PageNumberPagination(pagination.PageNumberPagination):
    last_page_strings = ()

    def get_page_number(self, request, paginator) -> int:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        digits = raw.lstrip("0") if raw.isascii() and raw.isdigit() else ""
        if not digits:
            raise ValidationError(
                {
                    self.page_query_param: [
                        f"{raw[:40]!r} is not a page number: use a whole number from 1, or "
                        "leave page out for the first page (the answer's next and previous "
                        "links name the others)."
                    ]
                }
            )
        # Past every page (a 404), without reading thousands of digits (int() refuses them).
        return int(digits) if len(digits) <= 18 else 10**18

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters

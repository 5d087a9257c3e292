"""The OpenAPI 3.1 document served at /api/v1/openapi.json, its schemas generated from the
same pydantic models that validate the requests, so the two cannot drift apart."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import bot
from bot.intake.api import (
    IDEMPOTENCY_KEY,
    Created,
    Internal,
    Invalid,
    Problem,
    ReportIn,
    ReportOut,
    TooMany,
    Warnings,
)
from bot.web import MAX_BODY

REF = "#/components/schemas/{model}"


def _schemas() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ReportIn, "validation")]
    models += [
        (m, "serialization")
        for m in (Created, ReportOut, Warnings, Problem, Invalid, TooMany, Internal)
    ]
    _, top = models_json_schema(models, ref_template=REF)
    return dict(top.get("$defs", {}))


def _json(model: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
        **extra,
    }


UNAUTHORIZED = _json(
    "Problem",
    "The token is missing, unknown or revoked (the answer does not say which).",
    headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
)
INTERNAL = _json("Internal", "Unexpected failure; the reference is in the operators' logs.")


def document(public_url: str) -> dict[str, Any]:
    report_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The report's ID, `EW-17` or `17`.",
        "schema": {"type": "string", "examples": ["EW-17"]},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Aegis early-warning intake",
            "version": bot.__version__,
            "description": (
                "Partner companies report suspicious incidents and read back their reports' "
                "status and the sector warnings meant for them. Each partner has its own API "
                "token, sent as `Authorization: Bearer <token>`. Bodies are at most "
                f"{MAX_BODY} bytes. Text in answers is JSON with `<`, `>` and `&` escaped."
            ),
        },
        "servers": [{"url": public_url}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/reports": {
                "post": {
                    "operationId": "submitReport",
                    "summary": "Report a suspicious incident",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": (
                                "Sending a report again with the same key returns the first "
                                "one (200) instead of taking it in twice."
                            ),
                            "schema": {
                                "type": "string",
                                "pattern": f"^{IDEMPOTENCY_KEY.pattern}$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": REF.format(model="ReportIn")}}
                        },
                    },
                    "responses": {
                        "201": _json(
                            "Created",
                            "Taken in.",
                            headers={
                                "Location": {
                                    "description": "The report's status URL.",
                                    "schema": {"type": "string"},
                                }
                            },
                        ),
                        "200": _json(
                            "Created",
                            "Taken in earlier under the same Idempotency-Key; not stored twice.",
                            headers={"Location": {"schema": {"type": "string"}}},
                        ),
                        "400": _json("Invalid", "Malformed JSON or fields; each bad field named."),
                        "401": UNAUTHORIZED,
                        "413": _json("Problem", f"The body is larger than {MAX_BODY} bytes."),
                        "415": _json("Problem", "The body is not application/json."),
                        "429": _json(
                            "TooMany",
                            "Too many reports this hour.",
                            headers={
                                "Retry-After": {
                                    "description": "Seconds to wait.",
                                    "schema": {"type": "integer", "minimum": 1},
                                }
                            },
                        ),
                        "500": INTERNAL,
                    },
                }
            },
            "/api/v1/reports/{id}": {
                "get": {
                    "operationId": "getReport",
                    "summary": "One of the partner's own reports and its status",
                    "parameters": [report_id],
                    "responses": {
                        "200": _json("ReportOut", "The report."),
                        "401": UNAUTHORIZED,
                        "404": _json(
                            "Problem", "No such report, or another partner's (the same answer)."
                        ),
                        "500": INTERNAL,
                    },
                }
            },
            "/api/v1/warnings": {
                "get": {
                    "operationId": "listWarnings",
                    "summary": "Approved sector warnings for the partner's sector",
                    "description": "Fetching the warnings records them as received.",
                    "responses": {
                        "200": _json(
                            "Warnings", "The approved warnings that reach the partner's sector."
                        ),
                        "401": UNAUTHORIZED,
                        "500": INTERNAL,
                    },
                }
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The partner's API token from `aegis partner add`.",
                }
            },
        },
    }

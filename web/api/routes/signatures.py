"""/petitions/{id}/signatures: list, read, and record a signature for a known person."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from campaigns import api as rules
from storage import api as store
from storage.models import Petition, Signature
from web.api.routes.common import (
    PREFIX,
    PageNo,
    PerPage,
    Read,
    RowId,
    Write,
    clock_of,
    database,
    get_row,
    href,
    in_scope,
    iso,
    paged,
    person_in_scope,
    scope_of,
)
from web.api.schemas import SignatureIn

router = APIRouter(prefix=PREFIX, tags=["api"])


def signature_json(request: Request, s: Signature) -> dict[str, Any]:
    links: dict[str, Any] = {
        "self": href(request, f"/petitions/{s.petition_id}/signatures/{s.id}"),
        "osdi:petition": href(request, f"/petitions/{s.petition_id}"),
    }
    # An erased person's signature still counts but is linked to nobody.
    if s.supporter_id is not None:
        links["osdi:person"] = href(request, f"/people/{s.supporter_id}")
    return {
        "identifiers": [f"nalgae:{s.id}"],
        "id": s.id,
        "created_date": iso(s.created_at),
        "modified_date": iso(s.invalidated_at or s.created_at),
        "valid": s.valid,
        "referrer_data": {"source": s.source_ref},
        "_links": links,
    }



@router.get("/petitions/{petition_id}/signatures", summary="Signatures of a petition")
async def list_signatures(request: Request, token: Read, petition_id: RowId,
                          page: PageNo = 1, per_page: PerPage = 25) -> dict[str, Any]:
    await get_row(request, Petition, petition_id, "petition")
    areas = (await scope_of(request, token)).region_filter  # a scoped token: its chapters
    return await paged(request, store.signatures_query(petition_id, areas), page, per_page,
                        "osdi:signatures", lambda s: signature_json(request, s))


@router.get("/petitions/{petition_id}/signatures/{signature_id}", summary="One signature")
async def get_signature(request: Request, token: Read, petition_id: RowId,
                        signature_id: RowId) -> dict[str, Any]:
    s = await get_row(request, Signature, signature_id, "signature")
    if s.petition_id != petition_id:
        raise rules.NotFound(f"no signature {signature_id} on petition {petition_id}")
    await in_scope(request, token, s.region, s.supporter_id, f"signature:{s.id}")
    return signature_json(request, s)


@router.post("/petitions/{petition_id}/signatures", status_code=201,
        summary="Record a signature for an existing person (200 if already signed)")
async def sign(request: Request, response: Response, token: Write, petition_id: RowId,
               body: SignatureIn) -> dict[str, Any]:
    await person_in_scope(request, token, body.person_id)
    async with database(request).session() as session:
        signed = await rules.record_signature(
            session, petition_id=petition_id, person_id=body.person_id,
            source_ref=body.source_ref, clock=clock_of(request), actor=rules.actor(token))
    if not signed.created:
        response.status_code = 200
    return signature_json(request, signed.signature)

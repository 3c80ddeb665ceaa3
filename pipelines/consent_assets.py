"""Consent as a Dagster asset: re-publish every published partition that holds a withdrawn subject."""

import dagster as dg

from tracedrop.pipelines.assets import as_metadata
from tracedrop.pipelines.consent_apply import apply_from_settings
from tracedrop.pipelines.resources import TracedropResource

CONSENT_GROUP = "consent"


@dg.asset(group_name=CONSENT_GROUP, kinds={"parquet", "s3"})
def consent_applied(context: dg.AssetExecutionContext, tracedrop: TracedropResource) -> dg.MaterializeResult:
    """Every published partition (any day, partner or destination, as recorded at publish time) holding a
    withdrawn user's or machine's rows, re-published without them; each removal goes to the consent ledger."""
    figures = apply_from_settings(tracedrop.settings(), context.run.run_id)
    if figures["failed"] or figures["remaining"]:
        raise dg.Failure(
            description=f"consent not applied everywhere yet ({figures['failed']} failed); the sensor retries",
            metadata=as_metadata(figures),
        )
    return dg.MaterializeResult(metadata=as_metadata(figures))


consent_job = dg.define_asset_job(
    "consent_apply",
    selection=dg.AssetSelection.assets(consent_applied),
    description="Apply withdrawn consent to every published partition (the same code as `tracedrop consent apply`).",
)

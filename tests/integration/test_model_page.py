"""The model page's data: a trained version keeps its held-out evaluation (confusion matrix and
per-class scores, or residuals; permutation importance per input feature), the training job that
made it, and the caller's APIs serving it; versions without an evaluation still load."""

from __future__ import annotations

import json

from sqlalchemy import update

from management_api.db import ModelVersion, session_factory
from management_api.keys import ENGINE
from schemas.resources import ModelList, ModelPublic
from tests.management_support import Api, churn_csv


async def test_model_versions_carry_evaluation_job_and_serving_apis(api: Api) -> None:
    alice = await api.new_user("alice")
    job = await api.train_csv(
        alice,
        "churn",
        churn_csv(),
        "churned",
        algorithm="random_forest",
        params='{"n_estimators": 10}',
    )
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]
    second = await api.train_csv(
        alice, "churn", churn_csv(seed=1), "churned", algorithm="logistic_regression"
    )
    assert second["version_number"] == 2, second
    regression = await api.train_builtin(alice, "diabetes", "diabetes", "linear_regression")
    assert regression["status"] == "succeeded", regression
    served = await api.export(alice, model_id, name="churn-v1", version=1)

    status, body = await api.call("GET", f"/api/models/{model_id}", alice)
    assert status == 200, body
    model = ModelPublic.model_validate(body)  # the answer is what the OpenAPI document says
    v1, v2 = model.versions
    assert v1.evaluation is not None and v2.evaluation is not None
    matrix = v1.evaluation.confusion_matrix
    assert matrix is not None and matrix.labels == v1.classes == ["no", "yes"]
    assert sum(map(sum, matrix.matrix)) == v1.n_test == v1.evaluation.n_test
    assert v1.evaluation.per_class is not None
    assert sum(row.support for row in v1.evaluation.per_class) == v1.n_test
    # Importance over the CSV's columns as sent (the category once, not one-hot columns).
    assert sorted(i.feature for i in v1.evaluation.importance) == sorted(
        ["age", "monthly_spend", "plan", "has_support"]
    )
    assert v1.evaluation.residuals is None

    # Each version knows the job that trained it, and that job's log is readable.
    assert v1.training_job_id == job["id"] and v2.training_job_id == second["id"]
    status, logs = await api.call("GET", f"/api/training-jobs/{job['id']}/logs", alice)
    assert status == 200 and any("permutation importance" in line for line in logs["lines"])

    # The APIs serving each version: v1 has the exported one, v2 none.
    assert v1.apis is not None and [(a.id, a.name, a.status) for a in v1.apis] == [
        (served["api"]["id"], "churn-v1", "active")
    ]
    assert v2.apis == []

    status, body = await api.call("GET", f"/api/models/{regression['model_id']}", alice)
    assert status == 200, body
    reg = ModelPublic.model_validate(body).versions[0]
    assert reg.evaluation is not None and reg.evaluation.residuals is not None
    assert reg.evaluation.confusion_matrix is None
    assert sum(reg.evaluation.residuals.counts) == reg.n_test
    assert 0 < len(reg.evaluation.residuals.points) <= 200
    assert len(reg.evaluation.importance) == len(reg.features) == 10
    assert len(json.dumps(body)) < 50_000

    # The list stays small: no evaluation, job or APIs there.
    status, body = await api.call("GET", "/api/models", alice)
    assert status == 200
    listed = ModelList.model_validate(body).items
    assert all(v.evaluation is None and v.apis is None for m in listed for v in m.versions)

    # Another user sees neither the model nor its APIs.
    bob = await api.new_user("bob")
    status, _ = await api.call("GET", f"/api/models/{model_id}", bob)
    assert status == 404

    # A version saved before evaluations were recorded (NULL column) still loads.
    sessions = session_factory(api.client.app[ENGINE])
    async with sessions() as session:
        await session.execute(
            update(ModelVersion).where(ModelVersion.id == v2.id).values(evaluation=None)
        )
        await session.commit()
    status, body = await api.call("GET", f"/api/models/{model_id}", alice)
    assert status == 200, body
    old = ModelPublic.model_validate(body).versions[1]
    assert old.evaluation is None and old.training_job_id == second["id"]

"""The churn table: columns, base rate, determinism and a learnable signal."""

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from nncourse.churn import churn_table

COLUMNS = [
    "customer_id", "tenure_months", "contract", "monthly_charges", "total_charges",
    "internet_service", "payment_method", "paperless_billing", "senior_citizen",
    "num_products", "support_calls", "customer_value", "churned",
]  # fmt: skip


def test_table_has_the_documented_columns() -> None:
    """Does the table have one row per customer and the documented columns?"""
    table = churn_table(500, seed=0)
    assert list(table.columns) == COLUMNS
    assert len(table) == 500 and table["customer_id"].is_unique
    assert set(table["churned"].unique()) <= {0, 1}
    assert (table["customer_value"] > 0).all()
    assert table["tenure_months"].between(1, 72).all()


def test_base_rate_is_realistic() -> None:
    """Do 20-30% of customers churn?"""
    assert 0.2 <= churn_table(5000, seed=0)["churned"].mean() <= 0.3


def test_table_is_determined_by_the_seed() -> None:
    """Does the same seed give the same table?"""
    assert churn_table(200, seed=4).equals(churn_table(200, seed=4))
    assert not churn_table(200, seed=4).equals(churn_table(200, seed=5))


def test_churn_is_driven_by_the_features() -> None:
    """Do month-to-month customers churn more, and does a linear model find signal (AUC > 0.75)?"""
    table = churn_table(5000, seed=1)
    by_contract = table.groupby("contract", observed=True)["churned"].mean()
    assert by_contract["month-to-month"] > 2 * by_contract["two-year"]
    features = table[["tenure_months", "monthly_charges", "support_calls", "senior_citizen"]]
    features = features.assign(monthly=(table["contract"] == "month-to-month").astype(int))
    scaled = (features - features.mean()) / features.std()
    model = LogisticRegression().fit(scaled[:4000], table["churned"][:4000])
    scores = model.predict_proba(scaled[4000:])[:, 1]
    assert roc_auc_score(table["churned"][4000:], scores) > 0.75
    assert np.isfinite(scores).all()

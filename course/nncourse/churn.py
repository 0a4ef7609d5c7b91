"""A seeded telecom customer table for the churn and business-threshold unit.

The churn probability is a logistic function of the features (short tenure,
month-to-month contracts, many support calls, high charges, fibre, electronic
checks raise it; long contracts, tenure and bundled products lower it), so a
model can learn real signal, and the base rate is around 25 %.
pandas is imported when a table is made, not by ``import nncourse``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from ._validate import positive_int

CONTRACTS = ("month-to-month", "one-year", "two-year")
INTERNET_SERVICES = ("none", "dsl", "fiber")
PAYMENT_METHODS = ("electronic check", "mailed check", "bank transfer", "credit card")

# Log-odds added by each category; the intercept sets the base rate near 25 %.
_INTERCEPT = -2.15
_CONTRACT_EFFECT = np.array([0.9, -0.6, -1.6])
_INTERNET_EFFECT = np.array([-0.5, 0.0, 0.45])
_PAYMENT_EFFECT = np.array([0.45, 0.05, -0.15, -0.2])

_MARGIN = 0.35  # share of the monthly charge the company keeps as profit


def churn_table(n: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Return ``n`` customers, one row each, with a ``churned`` outcome.

    Columns:

    - ``customer_id``: str, ``"C00001"``, ...
    - ``tenure_months``: int, months as a customer (1 to 72)
    - ``contract``: ``"month-to-month"``, ``"one-year"`` or ``"two-year"``
    - ``monthly_charges``: float, dollars per month
    - ``total_charges``: float, dollars billed so far
    - ``internet_service``: ``"none"``, ``"dsl"`` or ``"fiber"``
    - ``payment_method``: one of ``PAYMENT_METHODS``
    - ``paperless_billing``: int, 0 or 1
    - ``senior_citizen``: int, 0 or 1
    - ``num_products``: int, services subscribed (1 to 5)
    - ``support_calls``: int, calls to support in the last 6 months
    - ``customer_value``: float, the margin in dollars the company keeps over the
      next 12 months if the customer stays; the profit at stake in a threshold
      decision
    - ``churned``: int, 1 if the customer left (about 20-30 % of rows)
    """
    positive_int("churn_table", "n", n)
    rng = np.random.default_rng(seed)
    contract = rng.choice(len(CONTRACTS), n, p=[0.55, 0.25, 0.20])
    tenure_scale = np.array([14.0, 30.0, 45.0])[contract]
    tenure = np.clip(np.ceil(rng.exponential(tenure_scale)), 1, 72).astype(np.int64)
    internet = rng.choice(len(INTERNET_SERVICES), n, p=[0.2, 0.35, 0.45])
    payment = rng.choice(len(PAYMENT_METHODS), n, p=[0.35, 0.2, 0.22, 0.23])
    num_products = 1 + rng.binomial(4, 0.35, n) + (internet > 0)
    num_products = np.minimum(num_products, 5)
    base_charge = np.array([20.0, 50.0, 75.0])[internet]
    monthly = np.round(base_charge + 6.0 * num_products + rng.normal(0.0, 6.0, n), 2)
    monthly = np.clip(monthly, 18.0, 130.0)
    total = np.round(monthly * tenure * rng.uniform(0.95, 1.05, n), 2)
    paperless = rng.binomial(1, 0.6, n)
    senior = rng.binomial(1, 0.16, n)
    support_calls = rng.poisson(0.8 + 0.8 * (internet == 2) + 0.5 * senior)

    log_odds = (
        _INTERCEPT
        + _CONTRACT_EFFECT[contract]
        + _INTERNET_EFFECT[internet]
        + _PAYMENT_EFFECT[payment]
        - 0.035 * (tenure - 24)
        + 0.012 * (monthly - 65)
        + 0.35 * (support_calls - 1)
        - 0.15 * (num_products - 2)
        + 0.25 * paperless
        + 0.3 * senior
    )
    churned = rng.binomial(1, 1.0 / (1.0 + np.exp(-log_odds)))
    value = np.round(12 * _MARGIN * monthly * rng.uniform(0.8, 1.2, n), 2)

    import pandas as pd

    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(1, n + 1)],
            "tenure_months": tenure,
            "contract": pd.Categorical.from_codes(contract, CONTRACTS),
            "monthly_charges": monthly,
            "total_charges": total,
            "internet_service": pd.Categorical.from_codes(internet, INTERNET_SERVICES),
            "payment_method": pd.Categorical.from_codes(payment, PAYMENT_METHODS),
            "paperless_billing": paperless,
            "senior_citizen": senior,
            "num_products": num_products.astype(np.int64),
            "support_calls": support_calls.astype(np.int64),
            "customer_value": value,
            "churned": churned.astype(np.int64),
        }
    )

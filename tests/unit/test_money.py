from decimal import Decimal

import pytest

from kyma.billing.money import micros_to_header, micros_to_json, per_thousand_cost, usd_to_micros


@pytest.mark.parametrize("text, micros", [
    ("50", 50_000_000), ("2.10", 2_100_000), ("0.000001", 1), ("47.9", 47_900_000), (Decimal("1.5"), 1_500_000),
])
def test_usd_parses_exactly(text, micros):
    assert usd_to_micros(text) == micros


@pytest.mark.parametrize("bad", ["0.0000001", "-1", "abc", "NaN", "Infinity", ""])
def test_usd_rejects_sub_micro_negative_and_garbage(bad):
    with pytest.raises(ValueError):
        usd_to_micros(bad)


@pytest.mark.parametrize("micros, number, header", [
    (2_100_000, 2.1, "2.10"), (47_900_000, 47.9, "47.90"), (50_000_000, 50.0, "50.00"),
    (0, 0.0, "0.00"), (2_600, 0.0026, "0.0026"), (1, 0.000001, "0.000001"), (35_300_000, 35.3, "35.30"),
])
def test_edge_rendering_matches_contract(micros, number, header):
    # The seed page shows "cost_usd": 2.10 → JSON 2.1 and header "2.10"; sub-cent keeps its digits.
    assert micros_to_json(micros) == number
    assert repr(micros_to_json(micros)) == repr(number)
    assert micros_to_header(micros) == header


def test_json_rendering_is_exact_for_every_cent_up_to_a_million_dollars():
    # Floats appear only at the JSON edge; prove they print the exact decimal.
    for micros in range(0, 1_000_000 * 1_000_000, 9_999_990_001):
        assert Decimal(repr(micros_to_json(micros))) * 1_000_000 == micros


@pytest.mark.parametrize("chars, price, cost", [
    (1, 100_000, 100), (26, 100_000, 2_600), (1, 60_000, 60), (5000, 60_000, 300_000),
    (3, 333, 1),  # 0.999 micro-dollars rounds up to 1
    (0, 100_000, 0),
])
def test_per_thousand_cost_rounds_up_to_the_micro_dollar(chars, price, cost):
    assert per_thousand_cost(chars, price) == cost


@pytest.mark.parametrize("bad", ["1e400", "1000000000.000001", "99999999999999999999"])
def test_amounts_over_the_maximum_balance_are_refused_with_a_clear_message(bad):
    with pytest.raises(ValueError, match="maximum balance"):
        usd_to_micros(bad)


def test_the_largest_accepted_amount_renders_exactly():
    from kyma.billing.money import MAX_BALANCE_MICROS

    assert usd_to_micros("1000000000") == MAX_BALANCE_MICROS
    for micros in (MAX_BALANCE_MICROS, MAX_BALANCE_MICROS - 1, MAX_BALANCE_MICROS - 2_100_001):
        assert Decimal(repr(micros_to_json(micros))) * 1_000_000 == micros
        assert Decimal(micros_to_header(micros)) * 1_000_000 == micros


@pytest.mark.parametrize("micros", [2**53, 2**53 + 1, 10**20, 10**20 + 5])
def test_rendering_never_raises_even_beyond_what_the_service_accepts(micros):
    # A response after a charge must never fail; beyond 2**53 whole dollars stay exact.
    rendered = micros_to_json(micros)
    if micros % 1_000_000 == 0:
        assert type(rendered) is int and rendered * 1_000_000 == micros      # whole dollars, exact
    else:
        assert type(rendered) is float                      # the nearest float: within 1 ulp
        assert abs(Decimal(repr(rendered)) * 1_000_000 - micros) <= Decimal(micros) * Decimal(2) ** -52
    assert micros_to_header(micros).replace(".", "").lstrip("0").startswith(str(micros)[:10])


def test_kyma_admin_refuses_absurd_amounts_with_a_message_not_a_traceback(capsys):
    from kyma_admin.cli import main

    for amount in ("1e400", "NaN", "-5"):
        with pytest.raises(SystemExit) as exit_info:
            main(["top-up", "acct_x", amount])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "amount" in err.lower()

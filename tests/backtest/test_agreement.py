"""The backtest's trades agree with an established library's, trade by trade: the same
golden cross, stop and take-profit, on the same real bars, in backtesting.py
(kernc/backtesting.py), whose fill model is the one docs/backtesting.md states:
market orders at the next bar's open (or, `trade_on_close`, at the bar's close);
stops and limits inside the bar, at their price or at the open past them; a stop
before a take-profit when one bar reaches both."""

from __future__ import annotations

import asyncio
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

import pytest

from botwarden.backtest.results import Results, read_results
from botwarden.backtest.run import Plan, run

# backtesting.py 0.6 calls a pandas accessor pandas 3 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

backtesting = pytest.importorskip("backtesting", reason="pip install -e '.[dev]'")
pd = pytest.importorskip("pandas")

DATA = Path(__file__).parents[2] / "examples" / "data"
SYMBOLS = ["AAPL", "MSFT", "IBM", "GOOG"]
FAST, SLOW = 10, 30
CENT = Decimal("0.01")


def config(tmp_path: Path, fill: str, stop: Decimal, take_profit: Decimal | None) -> Path:
    path = tmp_path / "bot.yaml"
    lines = [
        "bot_id: agreement",
        f"symbols: [{', '.join(SYMBOLS)}]",
        "order: {qty: 10}",
        f"strategy: {{name: golden_cross, params: {{fast: {FAST}, slow: {SLOW}}}, timeframe: 1d}}",
        f"stop: {{kind: percent, distance: {stop}}}",
        f"backtest: {{fill: {fill}}}",
        "risk: {max_trades_per_hour: null}",
    ]
    if take_profit is not None:
        lines.append(f"take_profit: {{percent: {take_profit}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def ours(tmp_path: Path, fill: str, stop: Decimal, take_profit: Decimal | None) -> Results:
    plan = Plan.read(config(tmp_path, fill, stop, take_profit), DATA, None, None)
    folder = tmp_path / "run"
    folder.mkdir()
    asyncio.run(run(plan, folder, plan.config.load_strategy()))
    return asyncio.run(read_results(plan, folder))


def _sma(values: list[Decimal], length: int) -> Decimal:
    return sum(values[-length:], Decimal(0)) / length


def _up(price: Decimal) -> Decimal:
    """Where botwarden puts a long's stop and take-profit: rounded up to the cent."""
    return price.quantize(CENT, rounding=ROUND_CEILING)


def theirs(symbol: str, fill: str, stop_pct: Decimal, take_profit: Decimal | None) -> pd.DataFrame:
    """backtesting.py's trades of the same rules on `symbol`."""
    frame = pd.read_csv(DATA / f"{symbol}.csv", index_col="date", parse_dates=True)
    frame.columns = [c.capitalize() for c in frame.columns]
    on_close = fill == "close"

    class Cross(backtesting.Strategy):
        def init(self) -> None:
            pass

        def next(self) -> None:
            closes = [Decimal(str(c)) for c in self.data.Close]
            if len(closes) < SLOW + 1:
                return
            now_fast, now_slow = _sma(closes, FAST), _sma(closes, SLOW)
            was_fast, was_slow = _sma(closes[:-1], FAST), _sma(closes[:-1], SLOW)
            if was_fast <= was_slow and now_fast > now_slow and not self.position:
                # The price the entry will fill at (this bar's close, or the next
                # one's open): botwarden places its stop and take-profit from it.
                now = len(self.data) - 1
                if not on_close and now + 1 == len(frame):
                    return  # (no next bar to fill at)
                filled = frame.Close.iloc[now] if on_close else frame.Open.iloc[now + 1]
                entry = Decimal(str(filled))
                stop = _up(entry - entry * stop_pct / 100)
                target = _up(entry + entry * take_profit / 100) if take_profit else None
                self.buy(size=10, sl=float(stop), tp=float(target) if target else None)
            elif was_fast >= was_slow and now_fast < now_slow and self.position:
                self.position.close()

    test = backtesting.Backtest(frame, Cross, cash=100_000, trade_on_close=on_close)
    return test.run()._trades


@pytest.mark.parametrize(
    ("fill", "stop", "take_profit"),
    [
        ("next_open", Decimal(5), None),
        ("next_open", Decimal(5), Decimal(8)),
        ("close", Decimal(5), Decimal(8)),
        # Close enough that some bars reach both: the stop is taken to have come first.
        ("close", Decimal(1), Decimal(1)),
    ],
)
def test_the_trades_agree_with_backtesting_py(
    tmp_path: Path, fill: str, stop: Decimal, take_profit: Decimal | None
) -> None:
    ran = ours(tmp_path, fill, stop, take_profit)
    shift = pd.Timedelta(days=1) if fill == "close" else pd.Timedelta(0)
    compared = both = 0
    bars = {s: {b.time: b for b in rows} for s, rows in ran.plan.history.bars.items()}
    for symbol in SYMBOLS:
        mine = [t.trade for t in ran.trades if t.trade.symbol == symbol]
        other = theirs(symbol, fill, stop, take_profit)
        assert len(mine) == len(other), (symbol, len(mine), len(other))
        for trade, (_, row) in zip(mine, other.iterrows(), strict=True):
            # A fill at a bar's close is stamped with the close's time, the next day's
            # 00:00; backtesting.py labels it with the bar's own date.
            market_exit = ran.purposes[trade.closed_by].value == "exit"
            entry_time = pd.Timestamp(trade.entry_time).tz_localize(None) - shift
            exit_time = pd.Timestamp(trade.exit_time).tz_localize(None) - (
                shift if market_exit else pd.Timedelta(0)
            )
            seen = (entry_time, trade.entry_price, exit_time, trade.exit_price, trade.qty)
            expected = (
                row.EntryTime,
                Decimal(str(row.EntryPrice)),
                row.ExitTime,
                Decimal(str(row.ExitPrice)),
                Decimal(int(row.Size)),
            )
            assert seen == expected, symbol
            assert trade.pnl == ((trade.exit_price - trade.entry_price) * trade.qty)
            assert abs(float(trade.pnl) - row.PnL) < 1e-6
            compared += 1
            if take_profit is not None and not market_exit:  # did its exit bar reach both?
                bar = bars[symbol][trade.exit_time]
                stop_at = _up(trade.entry_price - trade.entry_price * stop / 100)
                target = _up(trade.entry_price + trade.entry_price * take_profit / 100)
                both += bar.low <= stop_at and bar.high >= target
    assert compared >= 40, "enough trades to mean something"
    reasons = {t.exit_reason for t in ran.trades}
    assert "stop" in reasons
    if stop >= 5:
        assert "exit" in reasons, "some closed by the strategy's signal"
    if take_profit is not None:
        assert "take_profit" in reasons
    if stop == take_profit == 1:
        assert both > 0, "some bar reached both the stop and the take-profit"

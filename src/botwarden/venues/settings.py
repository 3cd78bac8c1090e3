"""A bot's venue, as its config's `venue:` section says: the paper exchange (the
embedded default: no keys, no network), Alpaca, or an exchange through ccxt. Keys are
found by `venues.factory.credentials`; the venue is built by `venues.factory`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from botwarden.domain.models import Duration, UtcDatetime
from botwarden.errors import ConfigError
from botwarden.settings import Settings


class PaperInstrument(Settings):
    price: Decimal = Field(gt=0)
    """Where the price path starts (it wanders from there, repeatably)."""
    tick: Decimal = Field(default=Decimal("0.01"), gt=0)
    qty_step: Decimal | None = Field(default=None, gt=0)
    min_notional: Decimal | None = Field(default=None, ge=0)
    volatility: float = Field(default=0.015, gt=0, lt=1)
    """Typical daily move, as a fraction of the price."""


def _default_instruments() -> dict[str, PaperInstrument]:
    crypto = {"qty_step": Decimal("0.0001"), "min_notional": Decimal("5")}
    return {
        "SPY": PaperInstrument(price=Decimal("450")),
        "QQQ": PaperInstrument(price=Decimal("380")),
        "AAPL": PaperInstrument(price=Decimal("190"), volatility=0.02),
        "BTC/USDT": PaperInstrument(
            price=Decimal("60000"), tick=Decimal("0.1"), volatility=0.03, **crypto
        ),
        "ETH/USDT": PaperInstrument(price=Decimal("3000"), volatility=0.035, **crypto),
    }


class KeyedVenueSettings(Settings):
    """A real venue's keys: stored through the API (`stored_key`), written here (then
    keep the file private: botwarden warns otherwise), or, when not, read from the
    environment, then from `secrets_file`."""

    stored_key: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    """The name of a key stored through the API (`POST /api/v1/keys`), decrypted when
    the bot starts with the master key in BOTWARDEN_MASTER_KEY."""
    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    secrets_file: str | None = None
    """A file of `NAME=value` lines holding the same variables as the environment;
    relative to the config file's folder."""
    base_url: str | None = None
    """Another host for the venue's API: the local emulator, a testnet, a proxy."""
    timeout: Duration = timedelta(seconds=10)
    """Every HTTP request to the venue ends within this time."""


class AlpacaVenueSettings(KeyedVenueSettings):
    """Stocks and crypto at Alpaca, through alpaca-py. Keys: ALPACA_API_KEY and
    ALPACA_SECRET_KEY."""

    type: Literal["alpaca"]
    paper: bool = True
    """Trade the paper account (Alpaca's own simulation), not real money."""
    data_url: str | None = None
    """Another host for the market data API (the emulator serves both)."""


class CcxtVenueSettings(KeyedVenueSettings):
    """A crypto exchange through ccxt (Binance spot and USD-M futures are the tested
    ones). Keys: BOTWARDEN_CCXT_API_KEY and BOTWARDEN_CCXT_SECRET."""

    type: Literal["ccxt"]
    exchange: str = Field(pattern=r"^[a-z][a-z0-9]*$")
    """ccxt's id of the exchange: `binanceusdm` (USD-M futures), `binance` (spot), ..."""
    symbols: list[str] = Field(default_factory=list)
    """The markets the bot trades (`BTC/USDT`, or `BTC/USDT:USDT` for a perpetual).
    Binance lists fills one market at a time, so these are where fills are looked for
    (besides every market the bot held or ordered in since it started)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Passed to the ccxt exchange as its `options`."""
    clock_tolerance: Duration = timedelta(seconds=5)
    """How far the exchange's clock may be from this host's before the bot warns (fills
    are looked for by the exchange's own time either way)."""
    throttle: bool = True
    """ccxt paces requests by the exchange's published rate limits (Binance's weights:
    seconds a pass); off only for a venue that limits nothing, such as the emulator."""


class LivePrices(Settings):
    """What the paper exchange on live prices does when its source does not answer."""

    on_outage: Literal["refuse", "last_known"] = "refuse"
    """refuse: it refuses every request (as a venue in an outage) and, once the source
    answers, replays what the market did meanwhile; last_known: it goes on trading on
    the last prices it was told, and tries what rested through the outage against the
    market's minutes once the source tells them."""


class CcxtPrices(LivePrices, CcxtVenueSettings):
    """An exchange's public market data through ccxt: no keys (a paper bot never holds
    an exchange's trading keys)."""

    type: Literal["ccxt"] = Field(alias="from")

    @model_validator(mode="after")
    def _no_keys(self) -> CcxtPrices:
        given = [n for n in ("stored_key", "api_key", "secret_key", "secrets_file")
                 if getattr(self, n) is not None]  # fmt: skip
        if given:
            raise ValueError(
                f"{given[0]}: an exchange's market data is public, and a paper bot holds no"
                " trading keys: leave the keys out"
            )
        return self


class AlpacaPrices(LivePrices, AlpacaVenueSettings):
    """Alpaca's market data (it needs the account's keys, found as for the venue)."""

    type: Literal["alpaca"] = Field(alias="from")


PriceSource = Annotated[CcxtPrices | AlpacaPrices, Field(discriminator="type")]


class PaperVenueSettings(Settings):
    """The simulated exchange, the embedded default: no keys, no network."""

    type: Literal["paper"] = "paper"
    path: str = "state/{flow_id}.paper.db"
    """The exchange's own book; relative to the config file's folder."""
    seed: int = 7
    """Decides the price path: the same seed, the same prices."""
    currency: str = "USD"
    starting_cash: Decimal = Field(default=Decimal("100000"), gt=0)
    fee_rate: Decimal = Field(default=Decimal("0"), ge=0, lt=1)
    slippage: Decimal = Field(default=Decimal("0"), ge=0, lt=1)
    client_ids: Literal["alpaca", "binance"] = "alpaca"
    """Whose rule for reused client order ids: alpaca (never) or binance (once filled)."""
    shorting: bool = True
    reduce_only: bool = False
    """Honour reduce-only orders like a futures venue (an exit never flips a position);
    false: like a stock broker, where the bot cancels a position's stops before exiting."""
    replaces: bool = True
    """An order can be replaced by another in one request (Alpaca, Binance spot), which
    moves a trailing stop with never a moment without one; false: like an exchange that
    cannot, where the stop is canceled and then placed again."""
    speed: float = Field(default=1.0, gt=0)
    """Exchange time runs this many times faster than the wall clock (60: an hour a minute)."""
    start: UtcDatetime | None = None
    """The exchange's time when its book is first opened (default: now). With the same
    seed, the same start gives the same prices: a run that can be replayed."""
    instruments: dict[str, PaperInstrument] = Field(default_factory=_default_instruments)
    prices: PriceSource | None = None
    """Live prices from a real venue's market data (`{from: ccxt, exchange: binance}`),
    filled locally; None: a seeded random walk of `instruments`."""
    faults: str = ""
    """Injected faults, e.g. `timeout_after:on=submit,p=0.1; rate_limit:p=0.05`."""
    fault_seed: int = 0

    @field_validator("faults")
    @classmethod
    def _faults_parse(cls, spec: str) -> str:
        from botwarden.venues.paper.faults import FaultPlan

        try:
            FaultPlan.parse(spec, where="faults")
        except ConfigError as error:
            raise ValueError(str(error).removeprefix("faults: ")) from None
        return spec

    @model_validator(mode="after")
    def _live_prices_on_the_real_clock(self) -> PaperVenueSettings:
        if self.prices is None:
            return self
        if self.speed != 1 or self.start is not None:
            raise ValueError(
                "prices: a paper exchange on live prices runs on the real clock (no speed or start)"
            )
        if "instruments" in self.model_fields_set:
            raise ValueError(
                "prices: on live prices the bot's symbols are priced by the source, with its"
                " rules (no instruments)"
            )
        return self


def _paper_unless_named(value: Any) -> Any:
    """A `venue:` section without `type:` describes the paper exchange."""
    if isinstance(value, dict) and "type" not in value:
        return {**value, "type": "paper"}
    return value


VenueSettings = Annotated[
    PaperVenueSettings | AlpacaVenueSettings | CcxtVenueSettings,
    Field(discriminator="type"),
    BeforeValidator(_paper_unless_named),
]

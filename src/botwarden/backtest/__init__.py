"""`botwarden backtest`: a bot's own strategy and rules over recorded bars, through
the same engine and paper book it trades with (docs/backtesting.md)."""

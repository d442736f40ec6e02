"""The pure core: values, rules and folds. No I/O, no ORM, no clock, no web3, no CLI."""

"""The simulation: drive funds through a price history with a population of holders."""

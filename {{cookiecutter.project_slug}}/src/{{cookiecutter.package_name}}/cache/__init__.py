"""Redis response cache: repeated identical queries answered without calling PRSM or charging."""

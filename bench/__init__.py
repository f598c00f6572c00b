"""`make bench`: molstream end to end against the seed's design (baseline) and a direct bulk
load (the limit), on the same generated data and the same real services. See bench/README.md."""

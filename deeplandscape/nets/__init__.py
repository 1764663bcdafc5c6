"""Networks: mapping M, generator G, discriminators D_st and D_pair."""

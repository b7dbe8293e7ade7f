"""Solution to exercise rho_schedule (tutorial 01b, section 3): the KL weight's linear decay."""


def rho_schedule(rho0, t, T):
    return float(rho0) * (1.0 - float(t) / float(T))     # rho_0 at t = 0, 0 at t = T; t / T, not t // T

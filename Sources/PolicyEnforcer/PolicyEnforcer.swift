// placeholder: the policy enforcer lands here

print("keel-lab")

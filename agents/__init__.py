"""metaprod.agents"""

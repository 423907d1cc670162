"""metaprod.db"""

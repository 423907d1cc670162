"""metaprod.clients"""

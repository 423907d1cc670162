"""metaprod.core"""

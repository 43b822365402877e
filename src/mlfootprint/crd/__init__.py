"""mlfootprint.crd"""

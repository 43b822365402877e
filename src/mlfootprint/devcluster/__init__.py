"""mlfootprint.devcluster"""
